"""API Gateway, locally: both variants' REST routes on one HTTP server.

``gateway`` (the server's lifecycle and routing), ``service_integration`` (the DynamoDB AWS
service integration: request template, call, integration response), ``proxy_integration``
(the Lambda proxy integration and its status mapping), ``proxy_event`` (the REST proxy v1
event), ``http_server`` (the raw HTTP/1.1 layer), ``messages`` (request and response values),
``vtl`` (the Velocity renderer with API Gateway's ``$input``, ``$util``, ``$context``).
"""
