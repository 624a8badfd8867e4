"""Studies: sweeps of many runs (credo sweep), their comparison (credo compare) and export."""
