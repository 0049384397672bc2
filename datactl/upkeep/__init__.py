"""Store upkeep: gc (plan, then execute), fsck, squash, verify."""
