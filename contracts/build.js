#!/usr/bin/env node
// Compiles ProofOfCompute.sol with the pinned npm `solc` and writes the committed artifacts:
//   artifacts/ProofOfCompute.json      contractName, compiler, settings, abi, bytecode, deployedBytecode
//   artifacts/ProofOfCompute.abi.json  the ABI alone (read by the Rust `abigen!` bindings)
//
//   node build.js           build and write the artifacts
//   node build.js --check   build in memory; exit 1 if the committed artifacts differ
//
// The output is byte-for-byte deterministic: same sources + same pinned compiler => same files.
'use strict';

const fs = require('fs');
const path = require('path');

const ROOT = __dirname;
const CONTRACT = 'ProofOfCompute';
const SOURCE_NAME = `${CONTRACT}.sol`;
const ARTIFACT_DIR = path.join(ROOT, 'artifacts');
const ARTIFACT_PATH = path.join(ARTIFACT_DIR, `${CONTRACT}.json`);
const ABI_PATH = path.join(ARTIFACT_DIR, `${CONTRACT}.abi.json`);
const NODE_MODULES = path.join(ROOT, 'node_modules');
const IMPORT_PREFIX = '@openzeppelin/contracts/';

const OPTIMIZER_RUNS = 200;
const EVM_VERSION = 'paris'; // XDC has no PUSH0 (shanghai); paris is the newest target without it.

// Members the ABI must expose: the DESIGN.md interface plus the full ERC-20 surface that explorers
// look for (nine functions, two events).
const REQUIRED_FUNCTIONS = [
  'DISPATCHER_ROLE()',
  'computeUnits(address)',
  'totalUnits()',
  'recordCompute(address)',
  'recordBatch(bytes32,bytes32,address[],uint256[])',
  'batchRoot(bytes32)',
  'verifyReceipt(bytes32,bytes32,bytes32[])',
  'name()',
  'symbol()',
  'decimals()',
  'totalSupply()',
  'balanceOf(address)',
  'allowance(address,address)',
  'transfer(address,uint256)',
  'transferFrom(address,address,uint256)',
  'approve(address,uint256)',
];
const REQUIRED_EVENTS = [
  'ComputeRecorded(address,uint256,uint256,bytes32)',
  'BatchRecorded(bytes32,address,bytes32,uint256,uint256)',
  'Transfer(address,address,uint256)',
  'Approval(address,address,uint256)',
];

function fail(message) {
  process.stderr.write(`build.js: ERROR: ${message}\n`);
  process.exit(1);
}

function readPinnedVersions() {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const pins = Object.assign({}, pkg.dependencies, pkg.devDependencies);
  for (const name of ['solc', '@openzeppelin/contracts']) {
    const pinned = pins[name];
    if (!pinned || !/^\d+\.\d+\.\d+$/.test(pinned)) {
      fail(`package.json must pin an exact version of ${name} (found ${JSON.stringify(pinned)})`);
    }
    let installed;
    try {
      installed = JSON.parse(fs.readFileSync(path.join(NODE_MODULES, name, 'package.json'), 'utf8')).version;
    } catch (e) {
      fail(`${name} is not installed; run \`npm ci\` in ${ROOT}`);
    }
    if (installed !== pinned) {
      fail(`${name} ${installed} is installed but package.json pins ${pinned}; run \`npm ci\``);
    }
  }
}

// Resolves `@openzeppelin/contracts/...` imports from contracts/node_modules, nothing else.
function findImport(importPath) {
  if (!importPath.startsWith(IMPORT_PREFIX)) {
    return { error: `import not allowed (only ${IMPORT_PREFIX}...): ${importPath}` };
  }
  if (importPath.split('/').some((part) => part === '..' || part === '.' || part === '')) {
    return { error: `import path must be normalized: ${importPath}` };
  }
  const file = path.join(NODE_MODULES, importPath);
  try {
    return { contents: fs.readFileSync(file, 'utf8') };
  } catch (e) {
    return { error: `cannot read ${file}: ${e.message} (run \`npm ci\`)` };
  }
}

function strip0x(hex) {
  return hex.startsWith('0x') ? hex.slice(2) : hex;
}

// Returns the offset of the first PUSH0 (0x5f) executed as an instruction, or -1. Walks the code
// opcode by opcode, skipping PUSH1..PUSH32 immediates, and stops before the trailing CBOR metadata
// (its length is the last two bytes of the code), which is data, not instructions.
function findPush0(hex) {
  const code = Buffer.from(strip0x(hex), 'hex');
  let end = code.length;
  if (end >= 2) {
    const metaLen = code.readUInt16BE(end - 2);
    // A solc metadata section is a CBOR map (major type 5: 0xa0..0xbf) right before its length.
    if (metaLen + 2 <= end && (code[end - 2 - metaLen] & 0xe0) === 0xa0) {
      end -= metaLen + 2;
    }
  }
  for (let pc = 0; pc < end; pc++) {
    const op = code[pc];
    if (op === 0x5f) return pc;
    if (op >= 0x60 && op <= 0x7f) pc += op - 0x5f; // PUSH1..PUSH32 carry 1..32 bytes of data
  }
  return -1;
}

function signature(item) {
  const type = (p) => {
    if (p.type.startsWith('tuple')) {
      return `(${p.components.map(type).join(',')})${p.type.slice('tuple'.length)}`;
    }
    return p.type;
  };
  return `${item.name}(${item.inputs.map(type).join(',')})`;
}

function checkAbi(abi) {
  const functions = new Set(abi.filter((i) => i.type === 'function').map(signature));
  const events = new Set(abi.filter((i) => i.type === 'event').map(signature));
  const missing = REQUIRED_FUNCTIONS.filter((s) => !functions.has(s))
    .concat(REQUIRED_EVENTS.filter((s) => !events.has(s)));
  if (missing.length) fail(`ABI is missing required members: ${missing.join(', ')}`);
}

function compile() {
  readPinnedVersions();
  const solc = require('solc');

  const input = {
    language: 'Solidity',
    sources: {
      [SOURCE_NAME]: { content: fs.readFileSync(path.join(ROOT, SOURCE_NAME), 'utf8') },
    },
    settings: {
      optimizer: { enabled: true, runs: OPTIMIZER_RUNS },
      evmVersion: EVM_VERSION,
      outputSelection: {
        [SOURCE_NAME]: { [CONTRACT]: ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] },
      },
    },
  };

  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));
  const diagnostics = output.errors || [];
  const errors = diagnostics.filter((d) => d.severity === 'error');
  // Warnings about our own source are treated as errors too: the committed contract compiles clean.
  const ownWarnings = diagnostics.filter(
    (d) => d.severity === 'warning' && d.sourceLocation && d.sourceLocation.file === SOURCE_NAME,
  );
  for (const d of diagnostics) process.stderr.write(`${d.formattedMessage || d.message}\n`);
  if (errors.length) fail(`solc reported ${errors.length} error(s); see above`);
  if (ownWarnings.length) fail(`solc reported ${ownWarnings.length} warning(s) in ${SOURCE_NAME}; see above`);

  const compiled = output.contracts && output.contracts[SOURCE_NAME] && output.contracts[SOURCE_NAME][CONTRACT];
  if (!compiled) fail(`solc produced no output for ${SOURCE_NAME}:${CONTRACT}`);
  const bytecode = compiled.evm.bytecode.object;
  const deployedBytecode = compiled.evm.deployedBytecode.object;
  if (!bytecode || !deployedBytecode) fail('solc produced empty bytecode');
  if (/__\$[0-9a-f]{34}\$__/.test(bytecode)) fail('bytecode has unlinked library placeholders');

  for (const [label, hex] of [['deployedBytecode', deployedBytecode], ['bytecode', bytecode]]) {
    const at = findPush0(hex);
    if (at >= 0) fail(`${label} contains a PUSH0 (0x5f) instruction at byte ${at}; XDC does not support it`);
  }
  checkAbi(compiled.abi);

  const artifact = {
    contractName: CONTRACT,
    compiler: solc.version(),
    settings: { optimizer: true, runs: OPTIMIZER_RUNS, evmVersion: EVM_VERSION },
    abi: compiled.abi,
    bytecode: `0x${strip0x(bytecode)}`,
    deployedBytecode: `0x${strip0x(deployedBytecode)}`,
  };
  return {
    [ARTIFACT_PATH]: `${JSON.stringify(artifact, null, 2)}\n`,
    [ABI_PATH]: `${JSON.stringify(compiled.abi, null, 2)}\n`,
  };
}

function main() {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== '--check');
  if (unknown.length) fail(`unknown argument(s): ${unknown.join(' ')} (usage: node build.js [--check])`);
  const check = args.includes('--check');

  const files = compile();
  const rel = (p) => path.relative(ROOT, p);

  if (check) {
    const stale = [];
    for (const [file, content] of Object.entries(files)) {
      let committed = null;
      try {
        committed = fs.readFileSync(file, 'utf8');
      } catch (e) {
        // missing counts as stale
      }
      if (committed !== content) stale.push(committed === null ? `${rel(file)} (missing)` : rel(file));
    }
    if (stale.length) {
      fail(
        `artifact out of date: ${stale.join(', ')} differ(s) from a fresh build of ${SOURCE_NAME}; ` +
          'run `npm run build` in contracts/ and commit the result',
      );
    }
    process.stdout.write('artifact up to date\n');
    return;
  }

  fs.mkdirSync(ARTIFACT_DIR, { recursive: true });
  for (const [file, content] of Object.entries(files)) {
    fs.writeFileSync(file, content);
    process.stdout.write(`wrote ${rel(file)}\n`);
  }
}

main();
