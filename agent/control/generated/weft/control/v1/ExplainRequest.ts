// Original file: agent/control/proto/control.proto


export interface ExplainRequest {
  'from'?: (string);
  'host'?: (string);
  'port'?: (number);
  'path'?: (string);
  'method'?: (string);
  'headers'?: ({[key: string]: string});
}

export interface ExplainRequest__Output {
  'from': (string);
  'host': (string);
  'port': (number);
  'path': (string);
  'method': (string);
  'headers': ({[key: string]: string});
}
