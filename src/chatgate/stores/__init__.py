"""DynamoDB adapters. Domain code never imports boto3; these classes take their client in __init__."""
