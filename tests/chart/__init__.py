"""Tests of the Helm chart, its dashboards and alerts, rendered by the real `helm`."""
