"""A checked-out dataset or model: staging, status, commit, checkout, sync with remotes, merge."""
