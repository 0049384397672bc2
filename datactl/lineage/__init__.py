"""The lineage index of a store, queries over it, and drawing the graph."""
