"""The CrossGuard policy pack of the moltworker stacks.

`policies.rules` holds the validators (imported by the tests), `policies.pack` wraps them as
pulumi_policy policies, and `__main__.py` serves them to the Pulumi engine. Importing this
package never starts the pack's server.
"""
