/**
 * The CA of each API server started in this process, by URL, so that writeKubeconfig can
 * pin it when its caller does not pass `ca` (the controller writes the kubeconfig for the
 * server it just started).
 */
const cas = new Map<string, string>();

export function rememberCa(url: string, pem: string): void {
  cas.set(url, pem);
}

export function caFor(url: string): string | undefined {
  return cas.get(url);
}
