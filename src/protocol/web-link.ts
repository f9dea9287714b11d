import { ExitCode, TknockError } from "../errors.js";

/**
 * The web client's enrolment link: the page's address with the otpauth URI as its fragment,
 * `https://HOST/PATH/#otpauth://totp/tknock:...`. A phone's camera app opens it in the browser; the fragment never
 * leaves the phone (RFC 9110 section 7.1: a client does not send it), so the static host never sees the secret.
 */

/** Checks a `--web-url` (where the page is hosted) and returns it without any fragment. */
export function checkWebUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usage(`--web-url must be the page's address, e.g. https://example.org/tknock/, got ${webUrlQuote(text)}`);
  }
  const local = url.protocol === "http:" && ["localhost", "127.0.0.1", "[::1]"].includes(url.hostname);
  // The camera, WebCrypto and the service worker need a secure context: https, or http on this device only.
  if (url.protocol !== "https:" && !local) {
    throw usage(`--web-url must be an https:// address (the page needs a secure context), got an ${url.protocol.slice(0, -1)} address`);
  }
  if (url.hash !== "" || text.includes("#")) throw usage("--web-url must have no #fragment: the enrolment URI goes there");
  return url.href;
}

function usage(message: string): TknockError {
  return new TknockError("TKNOCK_USAGE", message, ExitCode.usage);
}

function webUrlQuote(text: string): string {
  return text.length <= 40 ? JSON.stringify(text) : `a value of ${text.length} characters`;
}

/** The link a QR code holds for the web client. */
export function formatWebLink(webUrl: string, uri: string): string {
  return `${checkWebUrl(webUrl)}#${uri}`;
}

/**
 * The enrolment URI in what a user gave: the URI itself, or a web client link holding it as its fragment.
 * Anything else is returned unchanged, for parseProfileUri to report.
 */
export function enrolmentUriOf(text: string): string {
  const t = text.trim();
  if (!/^https?:\/\//i.test(t)) return t;
  const hash = t.indexOf("#");
  return (hash < 0 ? undefined : uriFromFragment(t.slice(hash + 1))) ?? t;
}

/** The enrolment URI a page address's fragment (without '#') holds, or undefined. */
export function uriFromFragment(fragment: string): string | undefined {
  // A browser's address bar or a messenger may percent-encode characters of the fragment.
  const uri = /^otpauth%3A/i.test(fragment) ? safeDecode(fragment) : fragment;
  return /^otpauth:\/\//i.test(uri) ? uri : undefined;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** True when a text (a QR code's) is a web client link that holds an enrolment URI. */
export function isWebLink(text: string): boolean {
  const t = text.trim();
  return /^https?:\/\//i.test(t) && enrolmentUriOf(t) !== t;
}
