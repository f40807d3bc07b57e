"""Attribution of cost lines to teams: org-mapping rules with effective dating and precedence."""
