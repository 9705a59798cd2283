/** One JSON call to a matcher's REST API with a bearer token; a status of 400 or above throws with the body. */
export async function restCall(
  base: string,
  token: string,
  method: string,
  route: string,
  json?: unknown,
): Promise<any> {
  const response = await fetch(`${base}${route}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(json !== undefined && { body: JSON.stringify(json) }),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${JSON.stringify(body)}`);
  return body;
}
