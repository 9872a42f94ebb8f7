// Original file: agent/control/proto/control.proto


export interface SignCertificateRequest {
  'csrPem'?: (string);
  'ttlSeconds'?: (number);
}

export interface SignCertificateRequest__Output {
  'csrPem': (string);
  'ttlSeconds': (number);
}
