// Original file: agent/control/proto/control.proto


export interface RegisterWorkloadResponse {
  'versionInfo'?: (string);
}

export interface RegisterWorkloadResponse__Output {
  'versionInfo': (string);
}
