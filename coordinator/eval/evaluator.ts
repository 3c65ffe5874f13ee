/**
 * Scores a generator's samples with the MNIST classifier: N samples from fixed noise (Philox,
 * purpose EVAL, keyed by the run seed, so every epoch of a run sees the same z), their classifier
 * features against those of the 10,000 MNIST test images, and the classifier's predictions. Plain
 * typed arrays and sgemm, no tfjs: the coordinator runs it in a worker thread (thread.ts),
 * `ganfleet eval` in its own process.
 */
import { MANIFESTS, Z_DIM, layerParams } from '../../shared/model.js';
import type { MnistSet } from '../../shared/mnist.js';
import type { Normalization } from '../../shared/pixels.js';
import { Purpose, noiseBlock } from '../../shared/random.js';
import {
  CLASSES,
  FEATURES,
  activations,
  classifierForward,
  fillFromBytes,
  fillFromFloats,
  type Activations,
} from './classifier.js';
import { Act, type Gemm } from './gemm.js';
import {
  DIGIT_SHARE_MIN,
  classShares,
  classifierScore,
  featureStats,
  frechetDistance,
  softmaxRows,
  type FeatureStats,
} from './stats.js';

/** Samples scored by default (as many as the test set has images). */
export const EVAL_SAMPLES = 10_000;
/** Images per pass through the networks. */
const BATCH = 200;

/** The scores of one set of images. */
export interface EvalScores {
  /** Fréchet distance of the classifier features to the test set's (lower is better; 0 = same Gaussian). */
  fd: number;
  /** exp(E KL(p(y|x) ‖ p(y))): 1 … 10, higher is better. */
  classifier_score: number;
  /** Digits that got at least 5 % of the samples (10 = no digit missing). */
  digits: number;
  /** Share of the samples the classifier calls 0, 1, … 9. */
  digit_shares: number[];
  samples: number;
}

/** Generator output v → classifier input (pixel intensity in [0, 1]) = scale·v + offset, per normalisation. */
export function intensityOf(normalize: Normalization): { scale: number; offset: number } {
  return normalize === 'seed' ? { scale: 0.3081, offset: 0.1307 } : { scale: 0.5, offset: 0.5 };
}

export class Evaluator {
  private readonly acts: Activations = activations(BATCH);
  private readonly noise = new Map<string, Float32Array>();
  private readonly features: Float32Array;
  private readonly logits: Float32Array;
  private readonly h0 = new Float32Array(BATCH * 256);
  private readonly h1 = new Float32Array(BATCH * 256);
  private readonly generated = new Float32Array(BATCH * 784);

  /**
   * `reference`: the feature statistics every score is against (the MNIST test set's: from the
   * classifier file, or `fitReal` on the test set).
   */
  constructor(
    private readonly gemm: Gemm,
    private readonly classifier: Float32Array,
    public reference: FeatureStats | undefined,
    private readonly capacity = EVAL_SAMPLES,
  ) {
    this.features = new Float32Array(capacity * FEATURES);
    this.logits = new Float32Array(capacity * CLASSES);
  }

  /** Runs the classifier over `n` images that `fill(first, count, frames)` writes, batch by batch. */
  private classify(n: number, fill: (first: number, count: number, frames: Float32Array) => void): void {
    if (n < 2 || n > this.capacity) throw new RangeError(`samples must be in 2 … ${this.capacity}, got ${n}`);
    for (let first = 0; first < n; first += BATCH) {
      const count = Math.min(BATCH, n - first);
      fill(first, count, this.acts.frames);
      classifierForward(this.gemm, this.classifier, this.acts, count);
      this.features.set(this.acts.features.subarray(0, count * FEATURES), first * FEATURES);
      this.logits.set(this.acts.logits.subarray(0, count * CLASSES), first * CLASSES);
    }
  }

  /** The scores of the `n` images just classified, and their feature statistics. */
  private scores(n: number): { scores: EvalScores; stats: FeatureStats } {
    if (!this.reference) throw new Error('no reference statistics: fit them with fitReal first');
    const stats = featureStats(this.features, n, FEATURES, this.gemm);
    const p = softmaxRows(this.logits, n, CLASSES);
    const shares = classShares(p, n, CLASSES);
    return {
      stats,
      scores: {
        fd: frechetDistance(stats, this.reference),
        classifier_score: classifierScore(p, n, CLASSES),
        digits: shares.filter((s) => s >= DIGIT_SHARE_MIN).length,
        digit_shares: shares,
        samples: n,
      },
    };
  }

  /** Feature statistics of the first `n` images of `set` (e.g. the test set, as the reference). */
  fitReal(set: MnistSet, n = Math.min(set.count, this.capacity)): FeatureStats {
    this.classify(n, (first, count, frames) => fillFromBytes(set.images, first, count, frames));
    return featureStats(this.features, n, FEATURES, this.gemm);
  }

  /** The scores of real images (the first `n` of `set`): with training images, the floor a generator can reach. */
  real(set: MnistSet, n = Math.min(set.count, this.capacity)): EvalScores {
    this.classify(n, (first, count, frames) => fillFromBytes(set.images, first, count, frames));
    return this.scores(n).scores;
  }

  /** The scores of `n` images given as floats v (n × 784), read as intensities scale·v + offset. */
  scoreImages(x: Float32Array, n: number, intensity = intensityOf('minus1to1')): EvalScores {
    if (x.length !== n * 784) throw new RangeError(`images: ${x.length} values for ${n} images`);
    this.classify(n, (first, count, frames) =>
      fillFromFloats(x.subarray(first * 784, (first + count) * 784), count, intensity.scale, intensity.offset, frames),
    );
    return this.scores(n).scores;
  }

  /** The fixed z of the evaluation for a run seed (drawn once per seed and size). */
  evalNoise(seed: number, samples: number): Float32Array {
    const key = `${seed}:${samples}`;
    let z = this.noise.get(key);
    if (!z) {
      z = noiseBlock(seed, Purpose.EVAL, 0, 0, samples, Z_DIM);
      this.noise.set(key, z);
    }
    return z;
  }

  /** Scores `samples` images of generator `gen` (flat weights in the manifest's layout). */
  generator(gen: Float32Array, o: { seed: number; samples?: number; normalize?: Normalization }): EvalScores {
    const samples = o.samples ?? EVAL_SAMPLES;
    if (gen.length !== MANIFESTS.gen.size)
      throw new RangeError(`generator has ${gen.length} parameters, expected ${MANIFESTS.gen.size}`);
    const z = this.evalNoise(o.seed, samples);
    const { scale, offset } = intensityOf(o.normalize ?? 'minus1to1');
    const [l0, l1, l2] = layerParams('gen', gen);
    const { gemm } = this;
    this.classify(samples, (first, count, frames) => {
      const zb = z.subarray(first * Z_DIM, (first + count) * Z_DIM);
      gemm(false, true, count, l0!.layer.outFeatures, l0!.layer.inFeatures, zb, l0!.w, this.h0, l0!.b, Act.relu);
      gemm(false, true, count, l1!.layer.outFeatures, l1!.layer.inFeatures, this.h0, l1!.w, this.h1, l1!.b, Act.relu);
      gemm(
        false,
        true,
        count,
        l2!.layer.outFeatures,
        l2!.layer.inFeatures,
        this.h1,
        l2!.w,
        this.generated,
        l2!.b,
        Act.tanh,
      );
      fillFromFloats(this.generated, count, scale, offset, frames);
    });
    return this.scores(samples).scores;
  }
}
