"""The Pulumi program's library: typed settings, one component per concern, dynamic providers."""
