'use strict';
// Entry point of weft-native: loads the compiled addon (see index.d.ts for the API).
const { join } = require('node:path');

const addonPath = join(__dirname, 'build', 'Release', 'weft_native.node');

function load() {
  try {
    return require(addonPath);
  } catch (err) {
    if (err && err.code === 'MODULE_NOT_FOUND' && String(err.message).includes(addonPath)) {
      const e = new Error(
        `weft-native: ${addonPath} is missing; build the addon with \`npm run build:native\` ` +
          '(needs libbpf-dev and a C++ compiler)');
      e.code = 'WEFT_NATIVE_NOT_BUILT';
      throw e;
    }
    throw err;
  }
}

module.exports = load();
