/**
 * The runtime's control API (docs/interfaces.md): every call carries a fresh HS256 JWT that lives
 * one minute, so a token seen in a log or a trace is useless soon after.
 */
import { SignJWT } from "jose";

export const CONTROL_AUDIENCE = "moltworker-control";
export const CONTROL_ISSUER = "moltworker-worker";
export const CONTROL_TOKEN_TTL_S = 60;
export const MIN_CONTROL_SECRET_BYTES = 32;

const encoder = new TextEncoder();

export function controlSecretProblem(secret: string | undefined): string | undefined {
	if (!secret) {
		return "The Worker secret MOLT_CONTROL_SECRET is not set: pulumi up sets it; `make dev` writes it into .cache/devstack/worker.env.";
	}
	if (encoder.encode(secret).byteLength < MIN_CONTROL_SECRET_BYTES) {
		return "The Worker secret MOLT_CONTROL_SECRET is shorter than 32 bytes: generate a longer random value.";
	}
	return undefined;
}

export async function mintControlToken(secret: string, subject: string): Promise<string> {
	const now = Math.floor(Date.now() / 1000);
	return new SignJWT({})
		.setProtectedHeader({ alg: "HS256", typ: "JWT" })
		.setIssuer(CONTROL_ISSUER)
		.setAudience(CONTROL_AUDIENCE)
		.setSubject(subject)
		.setIssuedAt(now)
		.setExpirationTime(now + CONTROL_TOKEN_TTL_S)
		.setJti(crypto.randomUUID())
		.sign(encoder.encode(secret));
}
