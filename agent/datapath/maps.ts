// The datapath's pinned maps as one process holds them open (names in programs.ts).
import type * as native from 'weft-native';
import type { MAPS } from './programs';

export type DatapathMaps = Record<keyof typeof MAPS, native.BpfMap>;
