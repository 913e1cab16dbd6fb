// The signed-in API key. It lives in this module's memory; only when the user asks to stay
// signed in is it also put in sessionStorage, which belongs to this tab alone and is gone
// when the tab closes (never localStorage, never a cookie: those outlive the tab and, for a
// cookie, would be sent with requests by the browser itself).

const STORAGE_KEY = "gateway.dashboard.apiKey";

let current = null;

function storage() {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage disabled: memory only
  }
}

export function restore() {
  const stored = storage()?.getItem(STORAGE_KEY) ?? null;
  current = stored || null;
  return current;
}

export function apiKey() {
  return current;
}

export function remembered() {
  return Boolean(storage()?.getItem(STORAGE_KEY));
}

export function signIn(key, remember) {
  current = key;
  const store = storage();
  if (!store) return;
  if (remember) store.setItem(STORAGE_KEY, key);
  else store.removeItem(STORAGE_KEY);
}

export function signOut() {
  current = null;
  storage()?.removeItem(STORAGE_KEY);
}

// The shape of a key (docs/api.md, Authentication): checked before sending, so text that
// could never be one (spaces, other characters) is refused without a request.
export const KEY_PATTERN = /^[A-Za-z0-9_-]{32,256}$/;
