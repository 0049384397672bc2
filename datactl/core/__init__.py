"""The lowest layer: errors, ids, compression, units, progress, safe paths, settings."""
