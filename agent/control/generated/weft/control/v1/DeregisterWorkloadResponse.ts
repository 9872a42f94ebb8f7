// Original file: agent/control/proto/control.proto


export interface DeregisterWorkloadResponse {
  'versionInfo'?: (string);
}

export interface DeregisterWorkloadResponse__Output {
  'versionInfo': (string);
}
