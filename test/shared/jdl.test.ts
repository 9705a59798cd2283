/**
 * DIRAC JDL: the corpus of real files (test/fixtures/jdl, origins in SOURCES.md) parses and maps onto
 * valid native descriptions with what DIRAC would run; parametric expansion follows DIRAC's rules;
 * malformed files are refused with line and column.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PilothouseError } from '../../shared/errors.ts';
import { parseJobDescription } from '../../shared/job/description.ts';
import { parseJdl } from '../../shared/jdl/jdl-job.ts';
import { pythonFloat } from '../../shared/jdl/parametric.ts';

const corpus = fileURLToPath(new URL('../fixtures/jdl/', import.meta.url));
const read = (name: string) => readFileSync(path.join(corpus, name), 'utf8');
const jdl = (name: string) => parseJdl(read(name), { source: name });

function refused(text: string, pattern: RegExp, code = 'JDL_INVALID') {
  return assert.throws(
    () => parseJdl(text, { source: 'job.jdl', maxJobs: 1000 }),
    (error: unknown) => error instanceof PilothouseError && error.code === code && pattern.test(error.message),
  );
}

describe('JDL corpus', () => {
  for (const name of readdirSync(corpus).filter((file) => file.endsWith('.jdl') && file !== 'lfn-input-sandbox.jdl')) {
    it(`${name} - parses into native descriptions that validate`, () => {
      const parsed = jdl(name);
      assert.ok(parsed.jobs.length >= 1);
      for (const job of parsed.jobs) parseJobDescription(job.description);
    });
  }

  it('simple.jdl - executable, split arguments, named standard streams, output sandbox', () => {
    const [job] = jdl('simple.jdl').jobs;
    const d = parseJobDescription(job?.description);
    assert.deepEqual(
      [d.name, d.executable, d.arguments, d.stdout, d.stderr, d.outputSandbox],
      ['Simple_Job', '/bin/ls', ['-ltr'], 'StdOut', 'StdErr', ['StdOut', 'StdErr']],
    );
  });

  it('input-and-output-sandbox.jdl - a script shipped in the input sandbox runs from the job directory', () => {
    const [job] = jdl('input-and-output-sandbox.jdl').jobs;
    assert.equal(job?.description.executable, './testJob.sh');
    assert.deepEqual(job?.localInputFiles, ['testJob.sh']);
  });

  it('copy-file.jdl and data-in-user-jobs.jdl - CPUTime is CPU work, InputData kept, OutputSE kept with a warning', () => {
    const copy = parseJobDescription(jdl('copy-file.jdl').jobs[0]?.description);
    assert.deepEqual([copy.arguments, copy.requirements.cpuWork], [['my.file', 'my.copy'], 10]);
    const data = jdl('data-in-user-jobs.jdl');
    const d = parseJobDescription(data.jobs[0]?.description);
    assert.deepEqual(d.inputData, ['/dirac/user/a/atsareg/my_data.file']);
    assert.deepEqual(d.extraFields, { OutputData: ['my_data.copy'], OutputSE: 'DIRAC-USER' });
    assert.ok(data.warnings.some((w) => w.includes('OutputSE has no effect')));
  });

  it('lfn-input-sandbox.jdl - an LFN in the input sandbox is refused, naming the line', () => {
    refused(read('lfn-input-sandbox.jdl'), /^job\.jdl:5:9: InputSandbox names LFN:\/vo\.formation/);
  });

  it('parametric-list.jdl - five jobs, %s and %n substituted everywhere', () => {
    const jobs = jdl('parametric-list.jdl').jobs.map((job) => parseJobDescription(job.description));
    assert.deepEqual(
      jobs.map((d) => [d.name, d.arguments[0], d.stdout, d.outputSandbox[1]]),
      ['first', 'second', 'third', 'fourth', 'fifth'].map((p, n) => [
        `${n}_parametric`,
        p,
        `StdOut_${p}`,
        `StdErr_${p}`,
      ]),
    );
    assert.deepEqual(jobs[2]?.extraFields, { Parameter: 'third', ParameterNumber: 2 });
  });

  it('parametric-count.jdl - twenty jobs from ParameterStart 1 and ParameterStep 2, %n zero-padded', () => {
    const jobs = jdl('parametric-count.jdl').jobs.map((job) => job.description);
    assert.equal(jobs.length, 20);
    assert.deepEqual(
      jobs.map((d) => d.arguments?.[0]),
      Array.from({ length: 20 }, (_, n) => String(1 + 2 * n)),
    );
    assert.deepEqual([jobs[0]?.name, jobs[19]?.name, jobs[7]?.stdout], ['Parametric_00', 'Parametric_19', 'StdOut_07']);
  });

  it('workflow-parametric-input-data.jdl - named sequences: %(InputData)s takes a whole list, %(JOB_ID)s a value', () => {
    const parsed = jdl('workflow-parametric-input-data.jdl');
    const jobs = parsed.jobs.map((job) => parseJobDescription(job.description));
    assert.equal(jobs.length, 3);
    assert.deepEqual(jobs[1]?.inputData, ['/lhcb/data/data3', '/lhcb/data/data4']);
    assert.equal(jobs[2]?.extraFields['JOB_ID'], 3);
    assert.ok(jobs[0]?.arguments.includes('JOB_ID=1'));
    assert.deepEqual(parsed.jobs[0]?.localInputFiles, ['jobDescription.xml']);
    assert.ok(parsed.warnings.some((w) => w.includes('JOB_ID is not a JDL attribute')));
  });
});

describe('JDL syntax', () => {
  it('bracketed or bare, comments of three kinds, booleans, nested lists, sub-ads and expressions', () => {
    const parsed = parseJdl(
      `[ # leading comment
        Executable = "/bin/echo"; // trailing comment
        /* a block
           comment */ Arguments = "a 'b c'";
        WholeNode = True;
        Tags = {"GPU", cvmfs};
        Requirements = other.Site == "LCG.CERN.ch" && member("x", other.Tags);
        Extra = [ A = 1; B = {1, {2, 3}} ];
      ]`,
    );
    const d = parseJobDescription(parsed.jobs[0]?.description);
    assert.deepEqual(d.arguments, ['a', 'b c']);
    assert.equal(d.requirements.wholeNode, true);
    assert.deepEqual(d.requirements.tags, ['GPU', 'cvmfs']);
    assert.equal(d.extraFields['Requirements'], 'other.Site == "LCG.CERN.ch" && member("x", other.Tags)');
    assert.deepEqual(d.extraFields['Extra'], { A: 1, B: [1, [2, 3]] });
  });

  it('malformed files are refused with the line and column where they stop making sense', () => {
    refused('Executable = "/bin/ls"\nArguments = "-l";', /^job\.jdl:2:1: expected .*";"/);
    refused('Executable = "unterminated;\n', /^job\.jdl:1:28: expected a closing "/);
    refused('Executable = ;', /^job\.jdl:1:14: expected a value, found ";"/);
    refused('[ Executable = "a";', /^job\.jdl:1:20: expected "\]"/);
    refused('Executable = "a"; Arguments = {"x", ;', /^job\.jdl:1:37: expected "}" or a value, found ";"/);
    refused('Executable = "a"; 3rd = 1;', /^job\.jdl:1:19: expected .*an attribute name/);
  });

  it('values a job cannot have are refused by attribute, line and column', () => {
    refused('Arguments = "x";', /Executable is missing/);
    refused('Executable = "";', /^job\.jdl:1:1: Executable must not be empty/);
    refused('Executable = "a";\n  Priority = high;', /^job\.jdl:2:3: Priority must be a whole number/);
    refused('Executable = "a"; Executible = "b";', /Executible is not a JDL attribute: did you mean Executable\?/);
    refused('Executable = "a"; Site = "A"; Site = "B";', /Site is given twice/);
    refused('Executable = "a"; InputSandbox = {"SB:ProductionSandboxSE|/SandBox/x.tar.bz2"};', /SB:/);
  });

  it('Arguments with shell syntax run through /bin/sh -c, as DIRAC runs them', () => {
    const parsed = parseJdl('Executable = "echo"; Arguments = "$HOME > out.txt";');
    assert.deepEqual(
      [parsed.jobs[0]?.description.executable, parsed.jobs[0]?.description.arguments],
      ['/bin/sh', ['-c', 'echo $HOME > out.txt']],
    );
    assert.ok(parsed.warnings.some((w) => w.includes('shell syntax')));
  });

  it('processors, memory, sites and platform map onto requirements', () => {
    const d = parseJobDescription(
      parseJdl(
        'Executable = "a"; NumberOfProcessors = 4; MaxRAM = 2; Site = {"ANY", "LCG.CERN.ch"}; BannedSite = "LCG.X.fr"; GridCE = "ce.cern.ch"; Platform = "Linux_x86_64_glibc-2.17"; ExecutionEnvironment = {"A=1", "B=x%20y"}; Priority = 3; JobType = Test; JobGroup = "1234abcd";',
      ).jobs[0]?.description,
    );
    assert.deepEqual(d.requirements.cores, { min: 4, max: 4 });
    assert.deepEqual(
      [
        d.requirements.memoryMB,
        d.requirements.sites,
        d.requirements.bannedSites,
        d.requirements.ces,
        d.requirements.platform,
      ],
      [2048, ['LCG.CERN.ch'], ['LCG.X.fr'], ['ce.cern.ch'], 'x86_64'],
    );
    assert.deepEqual([d.environment, d.priority, d.jobType, d.jobGroup], [{ A: '1', B: 'x y' }, 3, 'Test', '1234abcd']);
  });
});

describe('JDL parametric rules', () => {
  it('decimal sequences print as Python prints floats; factors multiply', () => {
    const args = (text: string) =>
      parseJdl(`Executable = "a"; Arguments = "%s"; ${text}`).jobs.map((job) => job.description.arguments?.[0]);
    assert.deepEqual(args('Parameters = 3; ParameterStart = 0.; ParameterStep = 0.1;'), ['0.0', '0.1', '0.2']);
    assert.deepEqual(args('Parameters = 4; ParameterStart = 1; ParameterFactor = 2;'), ['1', '2', '4', '8']);
    assert.deepEqual(args('Parameters = 2;'), ['1', '1']);
    assert.deepEqual(
      [pythonFloat(1), pythonFloat(1e-5), pythonFloat(1e16), pythonFloat(0.30000000000000004)],
      ['1.0', '1e-05', '1e+16', '0.30000000000000004'],
    );
  });

  it('sequences of different lengths, bad counts and expansions over the cap are refused', () => {
    refused('Executable = "a"; Parameters = {1, 2}; Parameters.X = {1, 2, 3};', /Parameters.X has 3 values, but 2/);
    refused('Executable = "a"; Parameters = 0;', /whole number of jobs ≥ 1/);
    refused('Executable = "a"; ParameterStep = 2;', /ParameterStep without the Parameters attribute/);
    refused(
      'Executable = "a"; Parameters = 1001;',
      /expands to 1001 jobs, more than the 1000 allowed/,
      'SUBMISSION_TOO_LARGE',
    );
  });
});
