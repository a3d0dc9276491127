"""The worker process: the Dramatiq broker and actor, and the module Dramatiq loads."""
