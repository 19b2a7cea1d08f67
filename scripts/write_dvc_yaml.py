"""Write dvc.yaml from the code's view: one stage per model family (talbench.benchmark.pipeline.family_stage), the
code closures of synth, proposals and leaderboard, the leaderboard's inputs from pipeline.tables. Run it after adding
a family or changing a closure: `python scripts/write_dvc_yaml.py` (tests/pipeline/test_dvc_pipeline.py checks it)."""
import yaml

from talbench.benchmark.pipeline import family_stage
from talbench.benchmark.schema import list_tables
from talbench.code_scope import relative_paths
from talbench.config import REPO_ROOT, load_params
from talbench.data import synthetic_name
from talbench.runners.families import FAMILIES


def block(name, stage, indent="  "):
    text = yaml.safe_dump({name: stage}, sort_keys=False, default_flow_style=False, width=200)
    return "".join(indent + line + "\n" for line in text.splitlines())

def deps(*mods, indent=6):
    return "".join(" " * indent + "- " + p + "\n" for p in relative_paths(REPO_ROOT, *mods))

params = load_params()
tables = [t for fam in params["pipeline"]["tables"].values() for t in fam]
text = '''# talbench pipeline, read top to bottom:
#   synth -> premises (the data's premises, measured); synth_variant (a family's variant of the data)
#         -> proposals (BSN, shared by the detector tables) -> <family>@<table id> (one per active benchmark)
#   -> leaderboard
# `dvc repro` runs it offline on the CPU; params.yaml is the single source of every hyper-parameter.
# Values a command reads itself are listed under `params:`; values interpolated into `cmd` rerun the
# stage when they change. Each stage depends on exactly the params sections and the code files its work reads:
# the code lists are the static import closures of the modules named in their comments (a test keeps them in
# step with the code: talbench.benchmark.pipeline.family_stage builds the family stages), so a change to one
# model family, the leaderboard or the tuning code reruns nothing else. Switch data with
# `dvc exp run -S data.source=thumos14` (docs/pipeline.md): the real features are pinned by datasets.dvc and
# activitynet.dvc (md5 of the archive, unpacked on first use; DVC cannot take a .dvc file as a dependency) and every
# run records the data checksum; the synthetic data is the `synth` stage's output, a dependency of the stages that
# read it.
stages:
  # 1. The embedded synthetic benchmark (ActionFormer THUMOS14 layout) for the active profile.
  synth:
    cmd: talbench synth --profile ${data.profile}
    deps:
      # code: the import closure of talbench.data.synthetic.generate
''' + deps("talbench.data.synthetic.generate") + '''    params:
      - synth
      - profiles.${data.profile}.synth
      - data.synthetic_root
    outs:
      - ${data.synthetic_root}/${data.profile}

  # 1a. Variants of that benchmark (params.yaml synthetic_variants) for the families that read them.
  synth_variant:
    foreach: ${synthetic_variants}
    do:
      cmd: talbench synth --profile ${data.profile} --variant ${key}
      deps:
        # code: the import closure of talbench.data.synthetic.generate
''' + deps("talbench.data.synthetic.generate", indent=8) + '''      params:
        - synth
        - profiles.${data.profile}.synth
        - data.synthetic_root
        - synthetic_variants.${key}.synth
      outs:
        - ${data.synthetic_root}/''' + synthetic_name("${data.profile}", "${key}") + '''

  # 1b. The data's premises, measured (docs/synthetic.md, "Premises"): multi-class videos, context reliability,
  #     the pipeline's video-level classifier top-1, durations and pyramid levels, per-phase probes.
  premises:
    cmd: talbench premises
    deps:
      - ${data.synthetic_root}/${data.profile}
      # code: the import closure of talbench.premises
''' + deps("talbench.premises") + '''    params:
      - data
      - test_time
      - run.torch_threads
      - profiles.${data.profile}.data
      - profiles.${data.profile}.test_time
      - profiles.${data.profile}.run
    metrics:
      - results/premises.json:
          cache: false

  # 2. BSN proposals for every video (used by the D-Net and RefactorNet detectors), AR@AN on the test split.
  proposals:
    cmd: talbench proposals
    deps:
      - ${data.synthetic_root}/${data.profile}
      # code: the import closure of talbench.runners.bsn.stage
''' + deps("talbench.runners.bsn.stage") + '''    params:
      - bsn
      - data
      - eval
      - run.torch_threads
      - run.device
      - run.mixed_precision
      - profiles.${data.profile}.bsn
      - profiles.${data.profile}.data
      - profiles.${data.profile}.eval
      - profiles.${data.profile}.run
    outs:
      - proposals/${data.source}-${data.profile}
    metrics:
      - results/proposals.json:
          cache: false

  # 3. One stage per ACTIVE benchmark table, one `foreach` per model family over params.yaml
  #    `pipeline.tables.<family>` (stage `<family>@<table id>`): every row x seed is a nested MLflow run;
  #    results/<id>.json is the table's metrics file, predictions/<id>/ every run's predictions (what the
  #    verdicts' bootstrap over test videos reads). Params: the pipeline's seeds, the shared sections (model,
  #    data, eval, run), the family's own sections and test_time (talbench.runners.families.FAMILIES), and the
  #    profile's entries; code: the import closure of the family's runner and talbench.runners.common.execution.
'''
for name, fam in FAMILIES.items():
    text += block(name, family_stage(fam, params=params))
text += '''
  # 4. Leaderboards: published vs reproduced, claims judged with intervals (docs/leaderboards.md); committed
  #    markdown and verdict plots. Its inputs are the tables' results and predictions, listed one by one (keep
  #    in step with pipeline.tables): depending on the whole results/ folder would make the Optuna studies of
  #    tuning/dvc.yaml (results/tune/) upstream stages, and `dvc repro --force` would rerun them. After a study:
  #    `dvc repro -s -f leaderboard`. Every benchmark file (pending tables have leaderboard lines too), not the
  #    benchmarks/ folder, whose calibration, fidelity and perf scripts the leaderboard does not read.
  leaderboard:
    cmd: talbench leaderboard
    deps:
''' + "".join(f"      - results/{t}.json\n" for t in tables) + "".join(f"      - predictions/{t}\n" for t in tables) + "".join(f"      - benchmarks/{t}.yaml\n" for t in list_tables()) + '''      # code: the import closure of talbench.leaderboard.generate
''' + deps("talbench.leaderboard.generate") + '''    params:
      - leaderboard
    outs:
      - leaderboards:
          cache: false
'''
(REPO_ROOT / "dvc.yaml").write_text(text, encoding="utf-8")
