"""`lods view`: a local page over a run (splat, mesh, turntable, views, metrics, loss curve) or a benchmark."""
