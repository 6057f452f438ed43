// The console's calls to this instance's API (same origin, bearer token held in memory only).

let token = '';

export function setToken(value) {
  token = value;
}

export function hasToken() {
  return token !== '';
}

export class ApiProblem extends Error {
  constructor(status, problem) {
    super(problem?.detail ?? problem?.title ?? `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code ?? null;
  }
}

async function request(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) throw new ApiProblem(response.status, parsed);
  return parsed;
}

/** Dev-mode login (POST /v1/auth/token); resolves to { access_token, role }. */
export function login(username, password) {
  return request('POST', '/v1/auth/token', { username, password });
}

export function consoleSnapshot() {
  return request('GET', '/v1/admin/console');
}

export function account(id) {
  return request('GET', `/v1/accounts/${encodeURIComponent(id)}`);
}

export function history(id, limit = 10) {
  return request('GET', `/v1/accounts/${encodeURIComponent(id)}/transfers?limit=${limit}`);
}
