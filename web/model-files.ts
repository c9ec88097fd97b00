/**
 * A model's four files in the browser: picked by the user or fetched from a run folder served over HTTP,
 * and offered back as downloads. The layout itself (which files, what is in them) is the core's
 * (src/io/model-layout.ts), the same that `sll train` writes.
 */
import { MODEL_FILES, ModelFileError, artifactsFromModelFiles, modelFiles, type SllArtifacts } from '../src/index.js';

/** Files by name -> artifacts; a missing or malformed file is named in a ModelFileError. */
export function artifactsFromFiles(files: ReadonlyMap<string, ArrayBuffer>): SllArtifacts {
  return artifactsFromModelFiles({
    read(name) {
      const f = files.get(name);
      if (!f) throw new ModelFileError(`${name} is missing: pick the four files ${MODEL_FILES.join(', ')} of a run folder`);
      return new Uint8Array(f);
    },
    describe: (name) => name,
  });
}

/** Artifacts -> the four files as Blobs to download, as `sll train` writes them. */
export function filesFromArtifacts(artifacts: SllArtifacts): Map<string, Blob> {
  const type = (name: string) => (name.endsWith('.json') ? 'application/json' : 'application/octet-stream');
  return new Map([...modelFiles(artifacts)].map(([name, bytes]) => [name, new Blob([bytes.slice()], { type: type(name) })]));
}

/** The four files from a folder URL (ending in /), for a run served over HTTP. */
export async function fetchModelFiles(base: URL): Promise<Map<string, ArrayBuffer>> {
  const files = new Map<string, ArrayBuffer>();
  for (const name of MODEL_FILES) {
    const r = await fetch(new URL(name, base));
    if (!r.ok) throw new ModelFileError(`${new URL(name, base)}: HTTP ${r.status}`);
    files.set(name, await r.arrayBuffer());
  }
  return files;
}
