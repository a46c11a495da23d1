"""Lambda, locally: ``runtime`` (functions as pools of execution-environment processes,
concurrency, timeouts, cold starts), ``worker`` (the code inside an environment),
``sdk_preload`` (what the fork server imports once), ``invoke_api`` (Lambda's Invoke API).
"""
