#!/usr/bin/env node
'use strict'
require('../src/cli.js')
