"""``asyncbench verify``: a behavioural check of a running stage (local or AWS) in about a
minute: ``checks`` (requests through both variants), ``readback`` (AWS: the deployed mapping
and functions against the config), ``cli`` (the command and its table)."""
