"""Speed only: deleting any of these changes only speed, never an answer.

`noop` answers "nothing to do" from a snapshot of stats, `compiled` keeps a parsed workflow so
YAML is not read again, `entry` answers the cheapest command lines before click is imported.
Each falls back to the full path on any doubt or damage, which gives the same answer more
slowly: nothing outside this package may need one of them to be right."""
