/**
 * Constant-time comparison of a presented secret with the configured one. Both sides are hashed
 * first so the comparison always runs over 32 bytes: a wrong length takes the same path as a
 * wrong value and does not end the comparison early.
 */
const encoder = new TextEncoder();

async function digest(text: string): Promise<ArrayBuffer> {
	return crypto.subtle.digest("SHA-256", encoder.encode(text));
}

export async function secretEquals(presented: string, expected: string): Promise<boolean> {
	const [a, b] = await Promise.all([digest(presented), digest(expected)]);
	return crypto.subtle.timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(request: Request): string | undefined {
	const header = request.headers.get("Authorization");
	if (!header) return undefined;
	const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
	return match?.[1];
}
