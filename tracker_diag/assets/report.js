(function(){
'use strict';
// What to show is decided in Python (tracker_diag/page.py) and handed over in #td-data: the
// roles each chart draws and their key names, the auto scale of each chart, the number format.
var PAGE=JSON.parse(document.getElementById('td-data').textContent), DATA=PAGE.runs, FORMAT=PAGE.format;
var NS='http://www.w3.org/2000/svg';
var body=document.querySelector('#runs tbody');
var rows=[].slice.call(body.querySelectorAll('tr'));
var chips=[].slice.call(document.querySelectorAll('.counts button'));
var tip=document.getElementById('tip');
var L=+document.body.dataset.l, R=+document.body.dataset.r, T=+document.body.dataset.t, B=+document.body.dataset.b;
function fmt(v){  // page.fmt's rule, with its inputs (FORMAT)
  if(v===null||v===undefined||!isFinite(v)) return '\u2013';
  var a=Math.abs(v); if(a&&(a>=FORMAT.big||a<FORMAT.small)) return v.toExponential(FORMAT.digits-1).replace(/\.?0+e/,'e');
  return String(+v.toPrecision(FORMAT.digits));
}
function el(name,attrs,text){
  var e=document.createElementNS(NS,name);
  for(var k in attrs) e.setAttribute(k,attrs[k]);
  if(text!==undefined) e.textContent=text;
  return e;
}
function nearest(xs,x){  // index of the step closest to x (steps sorted)
  var lo=0,hi=xs.length-1;
  while(hi-lo>1){var mid=(lo+hi)>>1; if(xs[mid]<x) lo=mid; else hi=mid;}
  return Math.abs(xs[hi]-x)<Math.abs(xs[lo]-x)?hi:lo;
}
function valueAt(curve,x){var i=nearest(curve[0],x); return {step:curve[0][i],value:curve[1][i],i:i};}
function showTip(ev,lines){
  var host=dialog.open?dialog:document.body; if(tip.parentNode!==host) host.appendChild(tip);  // the dialog is on top
  tip.textContent=lines.join('\n'); tip.hidden=false;
  var x=Math.min(ev.clientX+14,window.innerWidth-tip.offsetWidth-4);
  var y=ev.clientY+14+tip.offsetHeight>window.innerHeight?ev.clientY-tip.offsetHeight-8:ev.clientY+14;
  tip.style.left=Math.max(2,x)+'px'; tip.style.top=Math.max(2,y)+'px';
}
function hideTip(){tip.hidden=true;}
function toView(svg,ev){var p=svg.createSVGPoint(); p.x=ev.clientX; p.y=ev.clientY; return p.matrixTransform(svg.getScreenCTM().inverse());}

// --- filter by regime, from the chips or the URL (#regime=overfitting) --------------------
function show(regime){
  rows.forEach(function(r){r.classList.toggle('hidden',regime!=='all'&&r.dataset.regime!==regime);});
  chips.forEach(function(b){b.classList.toggle('on',b.dataset.regime===regime);});
}
chips.forEach(function(b){b.addEventListener('click',function(){
  history.replaceState(null,'','#regime='+b.dataset.regime); show(b.dataset.regime);});});

// --- sortable columns, the sorted one shows its arrow (aria-sort) --------------------------
var heads=[].slice.call(document.querySelectorAll('#runs th[data-key]'));
heads.forEach(function(th){th.querySelector('button').addEventListener('click',function(){
  var k=th.dataset.key, d=th.getAttribute('aria-sort')==='ascending'?-1:1;
  heads.forEach(function(o){o.removeAttribute('aria-sort');});
  th.setAttribute('aria-sort',d>0?'ascending':'descending');
  rows.sort(function(a,b){
    var x=a.dataset[k], y=b.dataset[k];
    if(x===''&&y==='') return 0; if(x==='') return 1; if(y==='') return -1;  // blanks last either way
    var nx=Number(x), ny=Number(y);
    return d*(!isNaN(nx)&&!isNaN(ny)?nx-ny:x.localeCompare(y));
  });
  rows.forEach(function(r){body.appendChild(r);});
});});

// --- values under the pointer on the small charts -------------------------------------------
function roleName(run,role){return run.names[role];}
[].slice.call(document.querySelectorAll('svg.mini')).forEach(function(svg){
  var run=DATA[+svg.dataset.i], x0=+svg.dataset.x0, x1=+svg.dataset.x1;
  var roles=svg.dataset.roles.split(' ');
  var cursor=el('line',{'class':'cursor',y1:T,y2:B,visibility:'hidden'}); svg.appendChild(cursor);
  svg.addEventListener('pointermove',function(ev){
    var p=toView(svg,ev), x=x0+Math.max(0,Math.min(1,(p.x-L)/(R-L)))*(x1-x0), lines=[];
    roles.forEach(function(r){var v=valueAt(run.curves[r],x); if(!lines.length) lines.push('step '+fmt(v.step));
      lines.push(roleName(run,r)+': '+fmt(v.value));});
    var at=L+(x1>x0?(x-x0)/(x1-x0):0)*(R-L);
    cursor.setAttribute('x1',at); cursor.setAttribute('x2',at); cursor.setAttribute('visibility','visible');
    showTip(ev,lines);
  });
  svg.addEventListener('pointerleave',function(){cursor.setAttribute('visibility','hidden'); hideTip();});
  svg.addEventListener('click',function(){openRun(+svg.dataset.i);});
});
[].slice.call(document.querySelectorAll('button.more')).forEach(function(b){
  b.addEventListener('click',function(){openRun(+b.dataset.i);});});

// --- the detail view: loss and accuracy at full size ---------------------------------------
function ema(ys,w){  // debiased exponential moving average, as TensorBoard's smoothing; gaps stay gaps
  if(!w) return ys; var last=0,n=0;
  return ys.map(function(y){if(y===null) return null; last=last*w+(1-w)*y; n++; return last/(1-Math.pow(w,n));});
}
function ticks(a,b,n){
  var span=b-a||Math.abs(a)||1, step=Math.pow(10,Math.floor(Math.log10(span/n))), e=n*step/span;
  if(e<=0.15) step*=10; else if(e<=0.35) step*=5; else if(e<=0.75) step*=2;
  var out=[]; for(var v=Math.ceil(a/step)*step; v<=b+step*1e-6; v+=step) out.push(+v.toPrecision(12));
  return out;
}
function logScale(group){  // group.log: the auto choice (page.py); log needs every value positive
  if(scale.value==='linear'||!group.positive) return false;
  return scale.value==='log'||group.log;
}
var DW=720,DH=270,DL=62,DR=12,DT=12,DB=40;  // DW, DH follow the dialog's width (text stays legible)
function chart(run,roles,title,log,w){
  var ys=[],xs=[];
  roles.forEach(function(r){var c=run.curves[r]; xs=xs.concat(c[0]); c[1].forEach(function(y){if(y!==null&&(!log||y>0)) ys.push(y);});});
  var f=log?Math.log10:function(v){return v;};
  var x0=Math.min.apply(null,xs), x1=Math.max.apply(null,xs), y0=f(Math.min.apply(null,ys)), y1=f(Math.max.apply(null,ys));
  if(y0===y1){y0-=0.5; y1+=0.5;} if(x0===x1){x0-=0.5; x1+=0.5;}
  var pad=(y1-y0)*0.04; y0-=pad; y1+=pad;  // no curve runs along the frame
  var sx=function(x){return DL+(x-x0)/(x1-x0)*(DW-DL-DR);}, sy=function(y){return DH-DB-(f(y)-y0)/(y1-y0)*(DH-DT-DB);};
  var svg=el('svg',{viewBox:'0 0 '+DW+' '+DH,role:'img','class':'detail','data-roles':roles.join(' ')});
  svg.appendChild(el('title',{},title+(log?' (log scale)':'')));
  var yt=log?ticks(Math.floor(y0),Math.ceil(y1),6).filter(function(t){return t===Math.round(t)&&t>=Math.floor(y0)&&t<=Math.ceil(y1);}).map(function(t){return Math.pow(10,t);}):ticks(y0,y1,5);
  yt.forEach(function(t){var y=sy(t); if(y<DT-1||y>DH-DB+1) return;
    svg.appendChild(el('line',{'class':'grid',x1:DL,x2:DW-DR,y1:y,y2:y}));
    svg.appendChild(el('text',{'class':'dax',x:DL-5,y:y+4,'text-anchor':'end'},fmt(t)));});
  ticks(x0,x1,6).forEach(function(t){if(t<x0||t>x1) return; var x=sx(t);
    svg.appendChild(el('line',{'class':'grid',x1:x,x2:x,y1:DT,y2:DH-DB}));
    svg.appendChild(el('text',{'class':'dax',x:x,y:DH-DB+15,'text-anchor':'middle'},fmt(t)));});
  svg.appendChild(el('path',{'class':'axis',d:'M'+DL+','+DT+'V'+(DH-DB)+'H'+(DW-DR)}));
  svg.appendChild(el('text',{'class':'dax',x:(DL+DW-DR)/2,y:DH-6,'text-anchor':'middle'},'step'));
  svg.appendChild(el('text',{'class':'dax',x:14,y:(DT+DH-DB)/2,'text-anchor':'middle',transform:'rotate(-90 14 '+(DT+DH-DB)/2+')'},title+(log?' (log)':'')));
  function path(xs,ys,cls){
    var d='',pen=false;
    for(var i=0;i<xs.length;i++){var y=ys[i]; if(y===null||(log&&y<=0)){pen=false; continue;}
      d+=(pen?'L':'M')+sx(xs[i]).toFixed(1)+','+sy(y).toFixed(1); pen=true;}
    return el('path',{'class':'line '+cls,d:d});
  }
  var smooth={};
  roles.forEach(function(r){var c=run.curves[r], cls=/^train/.test(r)?'tr':'te';
    smooth[r]=ema(c[1],w);
    if(w){svg.appendChild(path(c[0],c[1],cls+' raw'));}
    svg.appendChild(path(c[0],smooth[r],cls+(w?' smooth':'')));});
  [[run.best,'best'],[run.onset,'onset']].forEach(function(m){if(m[0]!==null&&m[0]>=x0&&m[0]<=x1)
    svg.appendChild(el('line',{'class':m[1],x1:sx(m[0]),x2:sx(m[0]),y1:DT,y2:DH-DB}));});
  var lx=DL+8;
  roles.forEach(function(r){var t=el('text',{'class':'legend',x:lx+26,y:DT+12},roleName(run,r));
    svg.appendChild(el('line',{'class':/^train/.test(r)?'tr':'te',x1:lx,x2:lx+22,y1:DT+8,y2:DT+8,'stroke-width':2}));
    svg.appendChild(t); lx+=34+7*roleName(run,r).length;});
  var cursor=el('line',{'class':'cursor',y1:DT,y2:DH-DB,visibility:'hidden'}); svg.appendChild(cursor);
  svg.addEventListener('pointermove',function(ev){
    var p=toView(svg,ev), x=x0+Math.max(0,Math.min(1,(p.x-DL)/(DW-DL-DR)))*(x1-x0), lines=[];
    roles.forEach(function(r){var v=valueAt(run.curves[r],x); if(!lines.length) lines.push('step '+fmt(v.step));
      lines.push(roleName(run,r)+': '+fmt(v.value)+(w?'  (smoothed '+fmt(smooth[r][v.i])+')':''));});
    cursor.setAttribute('x1',sx(x)); cursor.setAttribute('x2',sx(x)); cursor.setAttribute('visibility','visible');
    showTip(ev,lines);
  });
  svg.addEventListener('pointerleave',function(){cursor.setAttribute('visibility','hidden'); hideTip();});
  return svg;
}
var dialog=document.getElementById('detail'), scale=document.getElementById('d-scale');
var smoothIn=document.getElementById('d-smooth'), smoothOut=document.getElementById('d-smooth-v'), current=null;
function draw(){
  var run=DATA[current], box=document.getElementById('d-charts'); box.textContent='';
  DW=Math.max(320,Math.min(900,box.clientWidth||720)); DH=DW<560?230:280;
  run.groups.forEach(function(g){box.appendChild(chart(run,g.roles,g.title,logScale(g),+smoothIn.value));});
}
function openRun(i){
  var run=DATA[i]; if(!run) return; current=i;
  document.getElementById('d-name').textContent=run.name;
  var row=body.querySelector('tr[data-i="'+i+'"]');
  document.getElementById('d-meta').textContent=run.regime+' \u00b7 '+run.id+(run.best!==null?' \u00b7 best step '+run.best:'')
    +(run.onset!==null?' \u00b7 overfitting from step '+run.onset:'');
  var why=document.getElementById('d-why'); why.textContent='';
  if(row) why.appendChild(row.querySelector('td.advice').cloneNode(true));
  if(!dialog.open) dialog.showModal();  // open first: the charts take the dialog's width
  draw();
  history.replaceState(null,'','#run='+encodeURIComponent(run.id));
}
scale.addEventListener('change',draw);
smoothIn.addEventListener('input',function(){smoothOut.textContent=smoothIn.value; draw();});
document.getElementById('d-close').addEventListener('click',function(){dialog.close();});
dialog.addEventListener('close',function(){hideTip(); history.replaceState(null,'',location.pathname+location.search);});

// --- the URL chooses the view: #regime=<regime> or #run=<run id> ------------------------------
var hash=new URLSearchParams(location.hash.slice(1));
show(hash.get('regime')||'all');
if(hash.get('run')!==null){
  var at=DATA.findIndex(function(r){return r.id===hash.get('run');});
  if(at>=0&&DATA[at].regime!=='failed') openRun(at);
}
})();
