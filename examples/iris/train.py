"""Train a scikit-learn iris classifier (the dataset ships inside scikit-learn) and save one version folder.

python train.py OUT_DIR --version N [--estimators K]
"""

import argparse
import pickle
from pathlib import Path

from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--version", type=int, required=True, help="recorded in the model, so answers name it")
    parser.add_argument("--estimators", type=int, default=10)
    args = parser.parse_args()
    features, labels = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=args.estimators, random_state=args.version).fit(features, labels)
    model.reloader_version = args.version
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "model.pkl").write_bytes(pickle.dumps(model))
    print(f"trained version {args.version}: accuracy {model.score(features, labels):.3f} -> {args.out_dir}/model.pkl")


if __name__ == "__main__":
    main()
