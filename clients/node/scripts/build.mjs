// `npm run build`: copies the permd.v1 protos and LICENSE from the
// repository into the package (when built from the repository), compiles
// src/ to dist/cjs with tsc, and adds the ESM entry dist/esm.
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const repo = join(pkg, '..', '..');

// The protos: ../../proto/permd/v1/*.proto → proto/permd/v1/. Outside the
// repository (an unpacked tarball) the copies already shipped are kept.
const protoSrc = join(repo, 'proto', 'permd', 'v1');
const protoDst = join(pkg, 'proto', 'permd', 'v1');
if (existsSync(protoSrc)) {
  rmSync(join(pkg, 'proto', 'permd'), { recursive: true, force: true });
  mkdirSync(protoDst, { recursive: true });
  for (const f of readdirSync(protoSrc).filter((f) => f.endsWith('.proto'))) {
    copyFileSync(join(protoSrc, f), join(protoDst, f));
  }
} else if (!existsSync(join(protoDst, 'authorizer.proto'))) {
  throw new Error(`no protos: neither ${protoSrc} nor ${protoDst} exists`);
}
if (existsSync(join(repo, 'LICENSE'))) copyFileSync(join(repo, 'LICENSE'), join(pkg, 'LICENSE'));

rmSync(join(pkg, 'dist'), { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', join(pkg, 'tsconfig.json')], { stdio: 'inherit' });
cpSync(join(pkg, 'src', 'esm'), join(pkg, 'dist', 'esm'), { recursive: true });
console.log('built dist/cjs, dist/esm; protos in proto/');
