"""One store's objects, refs and index: reading, writing, walking, resolving refs, diffing."""
