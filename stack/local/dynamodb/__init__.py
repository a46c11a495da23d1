"""DynamoDB, locally: ``dynamodb_local`` (AWS's DynamoDB Local process, run with
``-sharedDb``), ``http_client`` (DynamoDB's JSON protocol over keep-alive HTTP, used by the
gateway's service integration and by the stream reader), ``tables`` (the CDK app's tables).
"""
