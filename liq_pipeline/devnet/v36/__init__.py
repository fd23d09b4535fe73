"""An Aave V3.6 L2Pool market on the devnet (off the default path: `liq devnet up` still runs V3.0).

The contracts come from npm (@aave-dao/aave-v3-origin 3.6.0 and its pinned dependencies), are compiled once with
solc-js 0.8.27 into <DATA_DIR>/devnet/build (build.py), and deployed on a running anvil (deploy.py) from the
declarative market in spec.py; seed.py adds a handful of example users. Nothing of Aave's or OpenZeppelin's
source or build output is part of this repository.
"""
