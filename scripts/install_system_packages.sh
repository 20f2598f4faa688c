#!/usr/bin/env bash
# System packages cvrl needs beyond pip: FluidSynth (renders the demo dataset)
# and the three General-MIDI SoundFonts the demo versions are played with.
set -euo pipefail
# Wait for another apt (a second set-up, unattended upgrades) instead of failing.
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# (apt-get update has no lock timeout of its own: retry it.)
for try in $(seq 60); do
  $SUDO apt-get update -qq && break
  [ "$try" -lt 60 ] || exit 1
  echo "apt-get update: apt is busy; retrying in 10 s ($try/60)" >&2
  sleep 10
done
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
  fluidsynth fluid-soundfont-gm timgm6mb-soundfont musescore-general-soundfont-small \
  libsndfile1
