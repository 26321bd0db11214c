"""Stage 3 and the measurements: the MPC loop, eval rows, plan, probes, reports, and the demo pipeline."""
