"""`pulumi.dynamic` providers for what pulumi-cloudflare lacks, on the official cloudflare SDK."""
