#!/bin/sh
echo "Hello, $1, from $(hostname) (job $PILOTHOUSE_JOB_ID)"
