"""System tests: govrag as its users and operators run it, in other processes: the CLI,
Dagster's CLI and webserver, milvus-lite and milvus-server processes, tritonserver, kills
and faults, load, the deployment files and Compose."""
