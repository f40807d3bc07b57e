"""AWS Cost Explorer (Amazon Bedrock, Amazon Q, Bedrock Marketplace models)."""
