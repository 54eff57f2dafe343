// vitest 5 targets Node >= 22; on Node 20 its reporter calls Map.groupBy (Node 21+) when a test
// fails. Imported by the vitest config files, which run in vitest's main process, so the
// polyfill reaches the reporter.
if (typeof (Map as { groupBy?: unknown }).groupBy !== 'function') {
  (Map as unknown as { groupBy: unknown }).groupBy = <K, V>(items: Iterable<V>, key: (v: V, i: number) => K) => {
    const out = new Map<K, V[]>();
    let i = 0;
    for (const v of items) {
      const k = key(v, i++);
      const list = out.get(k);
      if (list) list.push(v);
      else out.set(k, [v]);
    }
    return out;
  };
}
export {};
