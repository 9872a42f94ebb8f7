// Original file: agent/control/proto/control.proto


export interface Resource {
  'name'?: (string);
  'version'?: (string);
  'body'?: (Buffer | Uint8Array | string);
}

export interface Resource__Output {
  'name': (string);
  'version': (string);
  'body': (Buffer);
}
