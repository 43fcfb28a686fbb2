"""Zero Trust Access in front of the Worker's admin, API and debug paths."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pulumi
import pulumi_cloudflare as cloudflare

PROTECTED_PATHS = ("/_admin", "/api", "/debug")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass
class AccessArgs:
    account_id: str
    hostname: str
    admin_emails: list[str] = field(default_factory=list)
    admin_email_domains: list[str] = field(default_factory=list)
    # An extra non-identity policy for CI smoke tests, matched by a dedicated service token.
    service_token: bool = False
    # Empty: read the team domain from the account's Zero Trust organization.
    team_domain: str = ""
    session_duration: str = "8h"


def destinations(hostname: str) -> list[str]:
    """Each protected path itself and everything under it."""
    return [uri for path in PROTECTED_PATHS for uri in (f"{hostname}{path}", f"{hostname}{path}/*")]


class Access(pulumi.ComponentResource):
    aud: pulumi.Output[str]
    team_domain: pulumi.Output[str]
    service_token_client_id: pulumi.Output[str] | None
    service_token_client_secret: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: AccessArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("moltworker:access:Access", name, None, opts)
        if not args.admin_emails and not args.admin_email_domains:
            raise ValueError(
                "AccessArgs: admin_emails or admin_email_domains must name someone; an allow-"
                "everyone policy is never created"
            )
        bad = [e for e in args.admin_emails if not _EMAIL.match(e)]
        if bad:
            raise ValueError(f"AccessArgs.admin_emails: not email addresses: {bad}")
        if not args.hostname or "/" in args.hostname:
            raise ValueError(f"AccessArgs.hostname {args.hostname!r} must be a bare hostname")
        child = pulumi.ResourceOptions(parent=self)

        includes = [
            cloudflare.ZeroTrustAccessPolicyIncludeArgs(
                email=cloudflare.ZeroTrustAccessPolicyIncludeEmailArgs(email=e)
            )
            for e in args.admin_emails
        ] + [
            cloudflare.ZeroTrustAccessPolicyIncludeArgs(
                email_domain=cloudflare.ZeroTrustAccessPolicyIncludeEmailDomainArgs(domain=d)
            )
            for d in args.admin_email_domains
        ]
        admins = cloudflare.ZeroTrustAccessPolicy(
            f"{name}-admins",
            account_id=args.account_id,
            name=f"{args.hostname} admins",
            decision="allow",
            includes=includes,
            session_duration=args.session_duration,
            opts=child,
        )
        policies = [cloudflare.ZeroTrustAccessApplicationPolicyArgs(id=admins.id, precedence=1)]

        self.service_token_client_id = None
        self.service_token_client_secret = None
        if args.service_token:
            token = cloudflare.ZeroTrustAccessServiceToken(
                f"{name}-ci-token",
                account_id=args.account_id,
                name=f"{args.hostname} CI smoke tests",
                duration="8760h",
                opts=child,
            )
            ci = cloudflare.ZeroTrustAccessPolicy(
                f"{name}-ci",
                account_id=args.account_id,
                name=f"{args.hostname} CI service token",
                decision="non_identity",
                includes=[
                    cloudflare.ZeroTrustAccessPolicyIncludeArgs(
                        service_token=cloudflare.ZeroTrustAccessPolicyIncludeServiceTokenArgs(
                            token_id=token.id
                        )
                    )
                ],
                opts=child,
            )
            policies.append(cloudflare.ZeroTrustAccessApplicationPolicyArgs(id=ci.id, precedence=2))
            self.service_token_client_id = pulumi.Output.secret(token.client_id)
            self.service_token_client_secret = pulumi.Output.secret(token.client_secret)

        app = cloudflare.ZeroTrustAccessApplication(
            f"{name}-app",
            account_id=args.account_id,
            name=f"{args.hostname} admin",
            type="self_hosted",
            destinations=[
                cloudflare.ZeroTrustAccessApplicationDestinationArgs(type="public", uri=uri)
                for uri in destinations(args.hostname)
            ],
            policies=policies,
            session_duration=args.session_duration,
            app_launcher_visible=False,
            # The Worker validates the JWT itself; the cookie must not be readable by scripts.
            http_only_cookie_attribute=True,
            same_site_cookie_attribute="lax",
            enable_binding_cookie=False,
            opts=child,
        )
        self.aud = pulumi.Output.secret(app.aud)
        if args.team_domain:
            self.team_domain = pulumi.Output.secret(args.team_domain)
        else:
            org = cloudflare.get_zero_trust_organization_output(
                account_id=args.account_id, opts=pulumi.InvokeOutputOptions(parent=self)
            )
            self.team_domain = pulumi.Output.secret(org.auth_domain.apply(_require_team_domain))
        self.register_outputs(
            {
                "aud": self.aud,
                "team_domain": self.team_domain,
                "service_token_client_id": self.service_token_client_id,
                "service_token_client_secret": self.service_token_client_secret,
            }
        )


def _require_team_domain(auth_domain: str | None) -> str:
    if not auth_domain:
        raise ValueError(
            "the account has no Zero Trust organization (no team domain); create one in the "
            "Zero Trust dashboard or "
            "`pulumi config set accessTeamDomain <team>.cloudflareaccess.com`"
        )
    return auth_domain
