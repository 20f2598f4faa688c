#!/usr/bin/env bash
# System packages cvrl needs beyond pip: FluidSynth (renders the demo dataset)
# and the three General-MIDI SoundFonts the demo versions are played with.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  fluidsynth fluid-soundfont-gm timgm6mb-soundfont musescore-general-soundfont-small \
  libsndfile1
