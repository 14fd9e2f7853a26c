// TSO segmentation and checksum completion in TypeScript (the Segmenter the
// unit tests and the simulations use; the native one passes the same contract
// in test/integration/native-segmenter.test.ts).

import { pureSegmenter } from '../../src/core/pure-segmenter';
import { describeSegmenterContract } from '../helpers/segmenter-contract';

describeSegmenterContract('TypeScript segmenter', pureSegmenter());
