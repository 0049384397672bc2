"""Byte layouts of everything a store holds: packs, objects, config, index files, keys, records."""
