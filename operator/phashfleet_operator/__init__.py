"""The kopf operator that reconciles PhashJobs into batches, status and replicas."""
