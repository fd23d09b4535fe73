"""An Aave V3.6 L2Pool market on the devnet, opt-in (`liq devnet up --protocol 3.6`; the default stays V3.0).

The contracts come from npm (@aave-dao/aave-v3-origin 3.6.0 and its pinned dependencies), are compiled once with
solc-js 0.8.27 into <DATA_DIR>/devnet/build (build.py), and deployed on a running anvil (deploy.py) from the
declarative market in spec.py; bulk.py seeds N borrowers (the state cache and `liq devnet seed` use it, see
../protocols.py), seed.py adds a handful of hand-made example users. Nothing of Aave's or OpenZeppelin's source or
build output is part of this repository.
"""
