"""The sandbox runtime: the container's entrypoint around the OpenClaw gateway."""
