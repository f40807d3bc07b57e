"""Files the product writes for other tools: the FOCUS dataset."""
