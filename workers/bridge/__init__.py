"""The bridge: runs the table maps, carrying rows from the side that masters them to the other."""
